"""The pure decision core: phases, the transition table, conditions and `decide()`.

Nothing here does I/O, reads a clock or draws a random number.
"""
