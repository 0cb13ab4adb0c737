/* libFuzzer target: an arbitrary sequence of fragments through the session's reassembly. The input is cut
 * into chunks by its own bytes: [flags][len][bytes...] repeated. */
#include <stddef.h>
#include <stdint.h>

#include "../../agent/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ra_session s;
	ra_session_init(&s, NULL, NULL, 16, 4096);
	size_t pos = 0;
	while (pos + 2 <= size) {
		uint8_t flags = data[pos], len = data[pos + 1];
		pos += 2;
		size_t n = len < size - pos ? len : size - pos;
		/* repeat the chunk to reach the limits with short inputs */
		unsigned repeat = (flags >> 2) & 0x3f;
		ra_rx_result r = RA_RX_MORE;
		for (unsigned i = 0; i <= repeat && r == RA_RX_MORE; i++)
			r = ra_session_rx(&s, data + pos, n, flags & 1, (flags & 2) && i == repeat);
		pos += n;
		if (r == RA_RX_CLOSE_TOO_LARGE)
			break;
		if (r != RA_RX_MORE) {
			if (r == RA_RX_MESSAGE && s.message_len > s.max_message)
				__builtin_trap();
			ra_session_send_error(&s, false, 0, RA_ERR_INVALID_MESSAGE, "fuzz");
			ra_session_rx_done(&s);
		}
	}
	ra_session_destroy(&s);
	return 0;
}
