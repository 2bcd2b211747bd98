/*
 * sched/version.c — the library's version at run time (the header's
 * WEFT_VERSION_* say which header a program was compiled with).
 */
#include "weft.h"

unsigned weft_version(void)
{
    return WEFT_VERSION_HEX;
}

const char *weft_version_string(void)
{
    return WEFT_VERSION_STRING;
}
