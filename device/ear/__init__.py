"""The ear: a continuous soundscape scanned for bird calls.

Modules, in the order audio flows through them:

* ``sources``: microphone (sounddevice/PortAudio), WAV/FLAC file, generator;
* ``ring``: the last seconds of raw audio in memory (pre-roll for clips);
* ``frontend``: streaming resampling and log-mel patches, shared with training;
* ``backbone``: YAMNet on log-mel patches (scores + 1024-d embedding);
* ``detector``: generic audio-model folders: backbone presence, optional species head, or a
  raw-waveform species model (``species``: BirdNET v2.4 and its range filter; ``windows``:
  the stream at the model's rate; ``install``: ``senses ear install birdnet``; ``models``:
  which one runs, with the fallback);
* ``detections``: thresholds, allow-list, overlapping windows merged into detections;
* ``clips``: a WAV clip per detection, retention by disk budget;
* ``service``: the running sense (Health events, microphone retries), ``build_ear``;
* ``settings``: the ``[ear]`` config section; ``cli``: ``senses ear listen | scan``.
"""
