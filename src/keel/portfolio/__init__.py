"""keel.portfolio"""
