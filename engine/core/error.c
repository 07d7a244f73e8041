#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

int eng_fail(struct eng_error *err, enum eng_code code, const char *fmt, ...)
{
    if (!err) return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

int eng_no_memory(struct eng_error *err)
{
    return eng_fail(err, ENG_NO_MEMORY, "out of memory");
}
