import CHeapTrim

/// Gives the heap's free pages back to the system.
///
/// glibc's allocator keeps freed memory for reuse: after a large list is decoded and the store
/// replaced, the process would keep the list's peak as its resident size although the memory is
/// free. Trimming costs a walk of the heap's free chunks (milliseconds at hundreds of megabytes),
/// so it is done only after such bulk changes.
public enum HeapTrim {
    /// Returns the free pages of every arena (`malloc_trim(0)`); true when memory was released.
    @discardableResult
    public static func returnFreePages() -> Bool {
        heap_trim_return_free_pages() == 1
    }
}
