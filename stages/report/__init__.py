"""Reporting: the Excel workbook of leads (`workbook`) and the DVC metrics files (`metrics`)."""
