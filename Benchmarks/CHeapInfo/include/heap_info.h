#ifndef HEAP_INFO_H
#define HEAP_INFO_H
#include <stddef.h>

/// Bytes of the heap in use now (glibc's mallinfo2().uordblks + hblkhd).
size_t heap_info_in_use(void);

#endif
