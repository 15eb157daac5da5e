"""One run skeleton shared by the NER, classification and MLM scripts."""
