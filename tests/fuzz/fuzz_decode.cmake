kb_add_fuzzer(decode LIBS kb_ingest)
