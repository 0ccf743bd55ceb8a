/* model_int.h — what the facade's other files need from a kb_model handle. */
#ifndef KB_MODEL_INT_H
#define KB_MODEL_INT_H

#include "kb/kb.h"

struct kb_encoder;

/* The open encoder behind a model handle (NULL for a tokenizer-only folder). Borrowed. */
struct kb_encoder *kb_model_encoder(kb_model *model);

/* The model's identity: the SHA-256 of its configuration and tokenizer files, the
 * safetensors header, the weights file's size and its first and last MiB (cheap to compute
 * at every open, and different for any retrained or re-exported model). A file that is there
 * but cannot be read fails (a FIFO or folder in its place: KB_EFORMAT), with
 * kb_model_errmsg() naming it. */
int kb_model_identity(kb_model *model, char out[65]);

#endif
