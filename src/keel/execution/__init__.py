"""keel.execution"""
