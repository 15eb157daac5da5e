"""Data: tags and label lists, NER and table files, the bundled corpora, tokenisation and alignment."""
