"""Text sources: vocabulary, subword tokenizers, token ids, the token cache."""
