kb_add_fuzzer(html LIBS kb_ingest)
