#include "spares.h"

#include <stdlib.h>

static struct {
	void *data;
	size_t alloc;
} kept[RA_SPARE_COUNT];
static unsigned kept_count;

void *ra_spare_take(size_t need, size_t most, size_t *alloc)
{
	for (unsigned i = 0; i < kept_count; i++) {
		if (kept[i].alloc < need || kept[i].alloc > most)
			continue;
		void *data = kept[i].data;
		*alloc = kept[i].alloc;
		kept[i] = kept[--kept_count];
		return data;
	}
	return NULL;
}

void ra_spare_give(void *data, size_t alloc)
{
	if (!data)
		return;
	if (alloc < RA_SPARE_MIN_BYTES || alloc > RA_SPARE_MAX_BYTES || kept_count == RA_SPARE_COUNT) {
		free(data);
		return;
	}
	kept[kept_count].data = data;
	kept[kept_count++].alloc = alloc;
}

size_t ra_spare_size_for(size_t need)
{
	return need >= RA_SPARE_MIN_BYTES && need <= RA_SPARE_MAX_BYTES ? RA_SPARE_MAX_BYTES : need;
}
