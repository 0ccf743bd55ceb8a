/* FAISS C API shim: the per-thread last error behind faiss_get_last_error(). */
#include "capi_int.h"

/* Declared by upstream's error_impl.h; one per thread, as in upstream's error_impl.cpp. */
thread_local std::exception_ptr faiss_last_exception;

/*
 * The message of this thread's last failed call, or NULL if none failed. The text lives in
 * the stored exception, so it stays valid until the next failure on this thread replaces it.
 */
const char* faiss_get_last_error() {
    if (!faiss_last_exception) {
        return nullptr;
    }
    try {
        std::rethrow_exception(faiss_last_exception);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "FAISS: exception of unknown type";
    }
}
