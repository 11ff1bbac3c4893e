"""Reading bytes from elsewhere: URLs and object stores, bounded regular-file reads, Arrow
columns, tar members and their index, the cache folder, saved JSON."""
