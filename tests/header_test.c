/* header_test.c — kb/kb.h compiles alone as strict C99 (-pedantic -Werror) and links. */
#include "kb/kb.h"

#include <stdio.h>
#include <string.h>

int main(void)
{
    kb_search_options so = KB_SEARCH_OPTIONS_INIT;
    kb_ingest_options io = KB_INGEST_OPTIONS_INIT;
    kb_ask_options ao = KB_ASK_OPTIONS_INIT;
    kb_pull_options po = KB_PULL_OPTIONS_INIT;
    if (so.version != KB_SEARCH_OPTIONS_VERSION || io.version != KB_INGEST_OPTIONS_VERSION ||
        ao.version != KB_ASK_OPTIONS_VERSION || po.version != KB_PULL_OPTIONS_VERSION)
        return 1;
    kb_close(NULL);
    kb_model_close(NULL);
    printf("kb %s from C\n", kb_version());
    return strlen(kb_version()) ? 0 : 1;
}
