#include "core/cancel.h"

#include <stddef.h>

static _Thread_local const struct eng_cancel *installed;

void eng_cancel_install(const struct eng_cancel *c)
{
    installed = c;
}

const struct eng_cancel *eng_cancel_installed(void)
{
    return installed;
}

int eng_cancel_poll(struct eng_error *err)
{
    const struct eng_cancel *c = installed;
    return c && c->check ? c->check(c->ctx, err) : 0;
}
