#ifndef IMAGE_BUILDER_HEAP_TRIM_H
#define IMAGE_BUILDER_HEAP_TRIM_H

/// Returns the free pages of every malloc arena to the system (glibc's malloc_trim(0)).
/// Returns 1 when memory was released, 0 when none was or the C library has no such call.
int heap_trim_return_free_pages(void);

#endif
