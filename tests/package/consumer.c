/*
 * A program that uses weft as an installed or embedded library would: the
 * public header, a flow on the default pool, the runtime version. Exits 0
 * when the sum is right and the header and the library agree on the version.
 */
#include <stdio.h>
#include <string.h>
#include <weft.h>

static int square(void *arg)
{
    long *x = arg;
    *x = *x * *x;
    return 0;
}

int main(void)
{
    long v[64];
    for (int i = 0; i < 64; i++)
        v[i] = i;
    weft_flow flow;
    if (weft_flow_open(&flow, NULL) != 0)
        return 1;
    for (int i = 0; i < 64; i++)
        if (weft_spawn(&flow, square, &v[i]) != 0)
            return 2;
    if (weft_flow_close(&flow) != 0)
        return 3;
    long sum = 0;
    for (int i = 0; i < 64; i++)
        sum += v[i];
    if (sum != 63L * 64 * 127 / 6)
        return 4;
    if (weft_version() != WEFT_VERSION_HEX || strcmp(weft_version_string(), WEFT_VERSION_STRING))
        return 5;
    if (weft_default_pool_shutdown() != 0)
        return 6;
    printf("consumer: weft %s, sum %ld\n", weft_version_string(), sum);
    return 0;
}
