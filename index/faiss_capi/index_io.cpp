/* FAISS C API shim: writing an index to a file and reading it back. */
#include <faiss/index_io.h>

#include <faiss/c_api/index_io_c.h>

#include "capi_int.h"

extern "C" {

int faiss_write_index_fname(const FaissIndex* idx, const char* fname) {
    return capi_call([&] {
        faiss::write_index(reinterpret_cast<const faiss::Index*>(idx), fname);
    });
}

/* A missing, truncated or foreign file is a FAISS_EXCEPT with the reason in the message. */
int faiss_read_index_fname(const char* fname, int io_flags, FaissIndex** p_out) {
    return capi_call([&] {
        *p_out = reinterpret_cast<FaissIndex*>(faiss::read_index(fname, io_flags));
    });
}

} /* extern "C" */
