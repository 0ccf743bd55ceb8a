/* Private to the FAISS C API shim: turns C++ exceptions into the C API's return codes. */
#ifndef KB_FAISS_CAPI_INT_H
#define KB_FAISS_CAPI_INT_H

#include <exception>
#include <stdexcept>

#include <faiss/c_api/error_c.h>
#include <faiss/c_api/error_impl.h> /* extern thread_local std::exception_ptr faiss_last_exception */
#include <faiss/impl/FaissException.h>

/*
 * Runs body() and returns 0, or, when it throws, keeps the exception for this thread's
 * faiss_get_last_error() and returns the code error_c.h gives its kind: FAISS_EXCEPT (-2),
 * STD_EXCEPT (-4) or UNKNOWN_EXCEPT (-1). Nothing crosses into C and nothing is printed.
 *
 * Upstream's CATCH_AND_HANDLE (macros_impl.h) is not used: without NDEBUG it writes every
 * error to stderr, and it copies a std::exception by its static type, which drops the message
 * of e.g. std::bad_alloc subclasses. std::current_exception() keeps the object thrown.
 */
template <typename Body>
static inline int capi_call(Body&& body) noexcept {
    try {
        body();
        return OK;
    } catch (const faiss::FaissException&) {
        faiss_last_exception = std::current_exception();
        return FAISS_EXCEPT;
    } catch (const std::exception&) {
        faiss_last_exception = std::current_exception();
        return STD_EXCEPT;
    } catch (...) {
        faiss_last_exception = std::make_exception_ptr(
                std::runtime_error("FAISS: exception of unknown type"));
        return UNKNOWN_EXCEPT;
    }
}

#endif
