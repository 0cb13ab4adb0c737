/* UTF-8: telling well-formed characters from bytes that are not. */
#include "proto.h"

/* The length (1 to 4) of the well-formed UTF-8 character at s, or 0: overlong forms, surrogates and code
 * points past U+10FFFF count as malformed, as a strict JSON parser would reject them. */
size_t ra_utf8_char_length(const unsigned char *s, size_t n)
{
	static const uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000}; /* by length: below is overlong */
	if (s[0] < 0x80)
		return 1;
	size_t len = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
	if (len == 0 || n < len)
		return 0;
	uint32_t cp = s[0] & (0x7fu >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	return cp < smallest[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0 : len;
}
