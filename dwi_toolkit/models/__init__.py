"""Model/Fit pairs: ADC (mono-exponential), IVIM, DTI, noise estimates."""
