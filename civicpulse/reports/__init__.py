"""Council reports: bin collection-due lists, Net Zero carbon, air-quality compliance."""
