/* FAISS C API shim: ParameterSpace, which sets search-time knobs (nprobe, efSearch) by name. */
#include <faiss/AutoTune.h>

#include <faiss/c_api/AutoTune_c.h>

#include "capi_int.h"

extern "C" {

int faiss_ParameterSpace_new(FaissParameterSpace** space) {
    return capi_call([&] {
        *space = reinterpret_cast<FaissParameterSpace*>(new faiss::ParameterSpace());
    });
}

void faiss_ParameterSpace_free(FaissParameterSpace* obj) {
    delete reinterpret_cast<faiss::ParameterSpace*>(obj);
}

/* Reaches through IDMap wrappers; a name the index does not have is a FAISS_EXCEPT. */
int faiss_ParameterSpace_set_index_parameter(
        const FaissParameterSpace* space,
        FaissIndex* index,
        const char* name,
        double value) {
    return capi_call([&] {
        reinterpret_cast<const faiss::ParameterSpace*>(space)->set_index_parameter(
                reinterpret_cast<faiss::Index*>(index), name, value);
    });
}

} /* extern "C" */
