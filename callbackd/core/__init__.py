"""The domain's vocabulary and the things every layer needs: errors, the clock, periods, phones, working days and
settings. Imports nothing else of callbackd."""
