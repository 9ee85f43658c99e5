"""silenced_stdout: library prints swallowed, the process's stdout never lost to a thread race."""

from __future__ import annotations

import sys
import threading
import time

from frameloom.quiet import silenced_stdout


def test_threads_silencing_at_once_leave_stdout_as_it_was(capsys):
    original = sys.stdout
    barrier = threading.Barrier(8)

    def noisy():
        barrier.wait()
        for _ in range(20):
            with silenced_stdout():
                print("library chatter")
                time.sleep(0.001)

    threads = [threading.Thread(target=noisy) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sys.stdout is original  # contextlib.redirect_stdout alone left a StringIO here
    print("the summary")
    assert capsys.readouterr().out == "the summary\n"
