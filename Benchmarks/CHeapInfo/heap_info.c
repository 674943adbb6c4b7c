#include "heap_info.h"
#include <malloc.h>

size_t heap_info_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}
