"""mmif.evaluation"""
