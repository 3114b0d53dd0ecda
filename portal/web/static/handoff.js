// Submit the hand-off form at once when JavaScript runs; without it the button does the same.
document.getElementById("handoff").submit();
