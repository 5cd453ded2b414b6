"""Read and write geodata: the reference data, the Zouping demo world, files in and out of PostGIS."""
