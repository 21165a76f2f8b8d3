"""What leaves callbackd as files or listings: ranking exports, the annual workbook, call sheets and listings."""
