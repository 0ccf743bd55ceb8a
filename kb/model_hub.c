/* model_hub.c — the public face of the model hub: kb_model_pull and kb_model_list. */
#include "kb/kb_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "encoder/hub.h"
#include "util/err.h"

int kb_model_pull(const char *name, const kb_pull_options *opts, char **out_dir, char *errbuf,
                  size_t errbuf_size)
{
    struct kb_err err = { 0, "" };
    int rc;
    if (errbuf && errbuf_size)
        errbuf[0] = '\0';
    kb_http_init();
    if (!out_dir)
        rc = kb_err_set(&err, KB_EINVALID, "kb_model_pull: out_dir is NULL");
    else
        rc = kb_hub_pull(out_dir, name, opts, &err);
    if (rc && errbuf && errbuf_size)
        snprintf(errbuf, errbuf_size, "%s", err.msg[0] ? err.msg : kb_strerror(rc));
    return rc;
}

int kb_model_list(kb_model_entry **out, size_t *n)
{
    if (!out || !n)
        return KB_EINVALID;
    return kb_hub_list(out, n, NULL);
}

void kb_model_list_free(kb_model_entry *entries, size_t n)
{
    kb_hub_list_free(entries, n);
}
