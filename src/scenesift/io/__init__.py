"""Dataset formats: importers turn files into FrameRecords, exporters turn them into files."""
