"""The kernel side: struct page, GFP flags, zones and watermarks, the page and slab allocators."""
