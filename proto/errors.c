/* The stable error-code table (docs/protocol.md, "Errors") and the one errno → code mapping. */
#include <errno.h>

#include "proto.h"

static const struct {
	const char *name;
	bool retryable;
} error_table[RA_ERR__COUNT] = {
	[RA_OK] = {"OK", false},
	[RA_ERR_INVALID_CONFIG] = {"INVALID_CONFIG", false},
	[RA_ERR_INVALID_MESSAGE] = {"INVALID_MESSAGE", false},
	[RA_ERR_MESSAGE_TOO_LARGE] = {"MESSAGE_TOO_LARGE", false},
	[RA_ERR_UNKNOWN_OP] = {"UNKNOWN_OP", false},
	[RA_ERR_UNSUPPORTED] = {"UNSUPPORTED", false},
	[RA_ERR_NOT_FOUND] = {"NOT_FOUND", false},
	[RA_ERR_ALREADY_EXISTS] = {"ALREADY_EXISTS", false},
	[RA_ERR_PERMISSION_DENIED] = {"PERMISSION_DENIED", false},
	[RA_ERR_TIMEOUT] = {"TIMEOUT", true},
	[RA_ERR_RESOURCE_EXHAUSTED] = {"RESOURCE_EXHAUSTED", true},
	[RA_ERR_RATE_LIMITED] = {"RATE_LIMITED", true},
	[RA_ERR_UNAUTHENTICATED] = {"UNAUTHENTICATED", false},
	[RA_ERR_UNAVAILABLE] = {"UNAVAILABLE", true},
	[RA_ERR_INTERNAL] = {"INTERNAL", false},
};

static bool code_is_valid(ra_err code) { return code >= RA_OK && code < RA_ERR__COUNT; }

const char *ra_err_name(ra_err code) { return code_is_valid(code) ? error_table[code].name : "INTERNAL"; }

bool ra_err_retryable(ra_err code) { return code_is_valid(code) && error_table[code].retryable; }

ra_err ra_err_from_errno(int err)
{
	switch (err) {
	case 0:
		return RA_OK;
	case ENOENT:
	case ESRCH:
		return RA_ERR_NOT_FOUND;
	case EEXIST:
	case ENOTEMPTY:
		return RA_ERR_ALREADY_EXISTS;
	case EACCES:
	case EPERM:
	case EROFS:
		return RA_ERR_PERMISSION_DENIED;
	case ENOSPC:
	case EDQUOT:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case EAGAIN:
	case EFBIG:
		return RA_ERR_RESOURCE_EXHAUSTED;
	case ETIMEDOUT:
		return RA_ERR_TIMEOUT;
	case EINVAL:
	case ENAMETOOLONG:
	case ENOTDIR:
	case EISDIR:
	case ELOOP:
	case ERANGE:
	case E2BIG:
	case ENOEXEC:
	case ENOTTY:
		return RA_ERR_INVALID_CONFIG;
	case EMSGSIZE:
		return RA_ERR_MESSAGE_TOO_LARGE;
	case ENOSYS:
	case EOPNOTSUPP:
		return RA_ERR_UNSUPPORTED;
	/* the other end of a connection went away or cannot be reached: worth another try */
	case ECONNREFUSED:
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ENETDOWN:
	case EADDRNOTAVAIL:
		return RA_ERR_UNAVAILABLE;
	default:
		return RA_ERR_INTERNAL;
	}
}
