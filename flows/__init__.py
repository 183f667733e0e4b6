"""Files and batches on the cutover ladder: partner documents and drop folders moved per entity on evidence."""
