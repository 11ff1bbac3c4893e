"""What the dataset reports: the model check, the input monitor, `show_batch`, the
epoch reports of replaced samples and truncated texts."""
