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

/* The slot of the smallest kept buffer. */
static unsigned smallest_kept(void)
{
	unsigned at = 0;
	for (unsigned i = 1; i < kept_count; i++)
		if (kept[i].alloc < kept[at].alloc)
			at = i;
	return at;
}

void ra_spare_give(void *data, size_t alloc)
{
	if (!data)
		return;
	if (alloc < RA_SPARE_MIN_BYTES || alloc > RA_SPARE_MAX_BYTES) {
		free(data);
		return;
	}
	if (kept_count < RA_SPARE_COUNT) {
		kept[kept_count].data = data;
		kept[kept_count++].alloc = alloc;
		return;
	}
	/* Full: a larger buffer takes the place of the smallest, so that odd sizes (a tunnel's exact chunks) never
	 * crowd out the full-size ones that every stream message needs. */
	unsigned at = smallest_kept();
	if (kept[at].alloc >= alloc) {
		free(data);
		return;
	}
	free(kept[at].data);
	kept[at].data = data;
	kept[at].alloc = alloc;
}

size_t ra_spare_size_for(size_t need)
{
	return need >= RA_SPARE_MIN_BYTES && need <= RA_SPARE_MAX_BYTES ? RA_SPARE_MAX_BYTES : need;
}
