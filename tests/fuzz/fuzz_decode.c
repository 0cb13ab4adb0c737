/* libFuzzer target: any bytes through the decoder, then an error reply for what failed, like dispatch does.
 * Finds what the pre-scan lets through to msgpack-c (allocation blow-ups show up under ASan). */
#include <stddef.h>
#include <stdint.h>

#include "../../proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ra_request req;
	const char *why;
	ra_err code = ra_request_decode(&req, data, size, &why);
	ra_enc e;
	ra_enc_init(&e, 16, 1 << 20);
	if (code != RA_OK) {
		ra_enc_error(&e, req.has_id, req.id, code, why);
	} else {
		const msgpack_object *echo = ra_map_get(req.map, "data");
		ra_enc_reply_begin(&e, req.id, 1);
		ra_enc_str(&e, "data");
		if (echo)
			ra_enc_object(&e, echo);
		else
			ra_enc_nil(&e);
	}
	/* What we encode must always decode again. */
	if (!ra_enc_failed(&e) && ra_scan(ra_buf_payload(&e.buf), e.buf.len) != RA_SCAN_OK) {
		ra_scan_result r = ra_scan(ra_buf_payload(&e.buf), e.buf.len);
		if (r != RA_SCAN_TOO_DEEP && r != RA_SCAN_TOO_MANY) /* echoing is not bound by input limits */
			__builtin_trap();
	}
	ra_enc_free(&e);
	ra_request_free(&req);
	return 0;
}
