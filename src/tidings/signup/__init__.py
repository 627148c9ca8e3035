"""Sign-up, account verification, trial accounts and the numbers a trial may send to."""
