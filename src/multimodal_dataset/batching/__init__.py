"""What batch ``i`` of epoch ``e`` is: the batch structure, the sample order, padding,
sharding and resumable state. Pure: no threads, no backend."""
