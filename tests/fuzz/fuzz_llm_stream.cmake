kb_add_fuzzer(llm_stream LIBS kb_llm)
