/* FAISS C API shim: indexes — factory, constructors, getters, train/add/search/remove. */
#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>

#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>

#include <cstring>

#include "capi_int.h"

/*
 * Every C handle is the C++ object's address, reinterpret_cast as upstream does. The C
 * subclass handles (FaissIndexIVF, FaissIndexIDMap2, FaissIndexFlatIP) are typedefs of
 * FaissIndex, so one pair of helpers serves them all.
 */
static faiss::Index* index_of(FaissIndex* index) {
    return reinterpret_cast<faiss::Index*>(index);
}

static const faiss::Index* index_of(const FaissIndex* index) {
    return reinterpret_cast<const faiss::Index*>(index);
}

/* The C enum copies faiss::MetricType value for value. */
static_assert(METRIC_INNER_PRODUCT == static_cast<int>(faiss::METRIC_INNER_PRODUCT), "metric");
static_assert(METRIC_L2 == static_cast<int>(faiss::METRIC_L2), "metric");
static_assert(sizeof(idx_t) == sizeof(faiss::Index::idx_t), "idx_t");

extern "C" {

int faiss_index_factory(
        FaissIndex** p_index,
        int d,
        const char* description,
        FaissMetricType metric) {
    return capi_call([&] {
        faiss::Index* made = faiss::index_factory(
                d, description, static_cast<faiss::MetricType>(metric));
        *p_index = reinterpret_cast<FaissIndex*>(made);
    });
}

int faiss_IndexFlatIP_new_with(FaissIndexFlatIP** p_index, idx_t d) {
    return capi_call([&] {
        *p_index = reinterpret_cast<FaissIndexFlatIP*>(new faiss::IndexFlatIP(d));
    });
}

/* As upstream: the IDMap2 does not own index (own_fields is 0); free it after the map. */
int faiss_IndexIDMap2_new(FaissIndexIDMap2** p_index, FaissIndex* index) {
    return capi_call([&] {
        *p_index = reinterpret_cast<FaissIndexIDMap2*>(
                new faiss::IndexIDMap2(index_of(index)));
    });
}

void faiss_Index_free(FaissIndex* obj) {
    delete index_of(obj);
}

int faiss_Index_d(const FaissIndex* obj) {
    return index_of(obj)->d;
}

idx_t faiss_Index_ntotal(const FaissIndex* obj) {
    return index_of(obj)->ntotal;
}

int faiss_Index_is_trained(const FaissIndex* obj) {
    return index_of(obj)->is_trained;
}

FaissMetricType faiss_Index_metric_type(const FaissIndex* obj) {
    return static_cast<FaissMetricType>(index_of(obj)->metric_type);
}

int faiss_Index_train(FaissIndex* index, idx_t n, const float* x) {
    return capi_call([&] { index_of(index)->train(n, x); });
}

int faiss_Index_add_with_ids(
        FaissIndex* index,
        idx_t n,
        const float* x,
        const idx_t* xids) {
    return capi_call([&] { index_of(index)->add_with_ids(n, x, xids); });
}

/* distances, labels: (n, k); a slot with no neighbour holds label -1. */
int faiss_Index_search(
        const FaissIndex* index,
        idx_t n,
        const float* x,
        idx_t k,
        float* distances,
        idx_t* labels) {
    return capi_call([&] { index_of(index)->search(n, x, k, distances, labels); });
}

int faiss_Index_remove_ids(
        FaissIndex* index,
        const FaissIDSelector* sel,
        size_t* n_removed) {
    return capi_call([&] {
        size_t removed = index_of(index)->remove_ids(
                *reinterpret_cast<const faiss::IDSelector*>(sel));
        if (n_removed) {
            *n_removed = removed;
        }
    });
}

int faiss_Index_reset(FaissIndex* index) {
    return capi_call([&] { index_of(index)->reset(); });
}

/* NULL when index is not an IndexIVF (an IDMap2 around one included). */
FaissIndexIVF* faiss_IndexIVF_cast(FaissIndex* index) {
    return reinterpret_cast<FaissIndexIVF*>(
            dynamic_cast<faiss::IndexIVF*>(index_of(index)));
}

size_t faiss_IndexIVF_nlist(const FaissIndexIVF* obj) {
    return reinterpret_cast<const faiss::IndexIVF*>(obj)->nlist;
}

size_t faiss_IndexIVF_nprobe(const FaissIndexIVF* obj) {
    return reinterpret_cast<const faiss::IndexIVF*>(obj)->nprobe;
}

void faiss_IndexIVF_set_nprobe(FaissIndexIVF* obj, size_t val) {
    reinterpret_cast<faiss::IndexIVF*>(obj)->nprobe = val;
}

/* NULL when index is not an IndexFlat (IndexFlatIP included; an IDMap2 around one excluded). */
FaissIndexFlat* faiss_IndexFlat_cast(FaissIndex* index) {
    return reinterpret_cast<FaissIndexFlat*>(
            dynamic_cast<faiss::IndexFlat*>(index_of(index)));
}

/* The stored rows, (ntotal, d) floats; *p_size counts floats. Invalid after add or remove. */
void faiss_IndexFlat_xb(FaissIndexFlat* index, float** p_xb, size_t* p_size) {
    faiss::IndexFlat* flat = reinterpret_cast<faiss::IndexFlat*>(index);
    if (p_xb) {
        *p_xb = flat->get_xb();
    }
    if (p_size) {
        *p_size = flat->codes.size() / sizeof(float);
    }
}

/* NULL when index is not an IndexIDMap2. */
FaissIndexIDMap2* faiss_IndexIDMap2_cast(FaissIndex* index) {
    return reinterpret_cast<FaissIndexIDMap2*>(
            dynamic_cast<faiss::IndexIDMap2*>(index_of(index)));
}

/* id_map[i] is the id of the wrapped index's row i. Invalid after add or remove. */
void faiss_IndexIDMap2_id_map(FaissIndexIDMap2* index, idx_t** p_id_map, size_t* p_size) {
    faiss::IndexIDMap2* map = reinterpret_cast<faiss::IndexIDMap2*>(index);
    if (p_id_map) {
        *p_id_map = map->id_map.data();
    }
    if (p_size) {
        *p_size = map->id_map.size();
    }
}

/* Borrowed: the wrapped index lives as long as the map (or its owner). */
FaissIndex* faiss_IndexIDMap2_sub_index(FaissIndexIDMap2* index) {
    return reinterpret_cast<FaissIndex*>(reinterpret_cast<faiss::IndexIDMap2*>(index)->index);
}

size_t faiss_IndexIVF_get_list_size(const FaissIndexIVF* index, size_t list_no) {
    return reinterpret_cast<const faiss::IndexIVF*>(index)->get_list_size(list_no);
}

/* Copies list list_no's ids into invlist, which holds get_list_size(list_no) of them. */
void faiss_IndexIVF_invlists_get_ids(
        const FaissIndexIVF* index,
        size_t list_no,
        idx_t* invlist) {
    const faiss::IndexIVF* ivf = reinterpret_cast<const faiss::IndexIVF*>(index);
    faiss::InvertedLists::ScopedIds ids(ivf->invlists, list_no);
    std::memcpy(invlist, ids.get(), ivf->get_list_size(list_no) * sizeof(idx_t));
}

/* A batch is used through the FaissIDSelector handle, as upstream's callers cast it. */
int faiss_IDSelectorBatch_new(
        FaissIDSelectorBatch** p_sel,
        size_t n,
        const idx_t* indices) {
    return capi_call([&] {
        *p_sel = reinterpret_cast<FaissIDSelectorBatch*>(
                new faiss::IDSelectorBatch(n, indices));
    });
}

void faiss_IDSelector_free(FaissIDSelector* obj) {
    delete reinterpret_cast<faiss::IDSelector*>(obj);
}

} /* extern "C" */
