kb_add_fuzzer(zip LIBS kb_ingest)
