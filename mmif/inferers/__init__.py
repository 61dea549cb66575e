"""mmif.inferers"""
