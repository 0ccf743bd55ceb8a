// header_test.cpp — kb/kb.h compiles alone as strict C++11 (-pedantic -Werror) and links.
#include "kb/kb.h"

#include <cstdio>
#include <cstring>

int main()
{
    kb_search_options so = KB_SEARCH_OPTIONS_INIT;
    kb_ingest_options io = KB_INGEST_OPTIONS_INIT;
    if (so.version != KB_SEARCH_OPTIONS_VERSION || io.version != KB_INGEST_OPTIONS_VERSION)
        return 1;
    kb *handle = nullptr;
    int rc = kb_open(&handle, "", 0); // an empty path is refused, with a message
    bool ok = rc == KB_EINVALID && handle && std::strlen(kb_errmsg(handle)) > 0;
    kb_close(handle);
    std::printf("kb %s from C++\n", kb_version());
    return ok ? 0 : 1;
}
