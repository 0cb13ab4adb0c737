/* spares: large buffers kept for reuse between messages. musl's malloc serves every allocation above
 * ~128 KiB with its own mmap and frees it with munmap, so a stream that allocates one message buffer per
 * 256 KiB pays an mmap, a munmap and a page fault per 4 KiB each time: most of the agent's CPU when a
 * tunnel or an output stream runs flat out. A handful of buffers between RA_SPARE_MIN_BYTES and
 * RA_SPARE_MAX_BYTES are kept (at most RA_SPARE_COUNT, so never more than ~2 MiB) and handed out again. */
#ifndef RA_SPARES_H
#define RA_SPARES_H

#include <stddef.h>

#define RA_SPARE_COUNT 8
#define RA_SPARE_MIN_BYTES (16u << 10)
#define RA_SPARE_MAX_BYTES ((256u << 10) + 4096u)

/* A kept buffer of need to most bytes (its size in *alloc), or NULL when none fits: then malloc. */
void *ra_spare_take(size_t need, size_t most, size_t *alloc);

/* Takes ownership of data (alloc bytes, from malloc or ra_spare_take): keeps it or frees it. */
void ra_spare_give(void *data, size_t alloc);

/* The size worth allocating for need bytes: rounded up to RA_SPARE_MAX_BYTES when it would be kept anyway,
 * so that the buffer fits any later need of its kind. */
size_t ra_spare_size_for(size_t need);

#endif
