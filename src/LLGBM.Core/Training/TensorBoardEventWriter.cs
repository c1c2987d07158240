using System.Net;

namespace LLGBM.Training;

/// <summary>
/// Writes scalars to a TensorBoard event file, <c>DIR/events.out.tfevents.{unix seconds}.{hostname}</c> (a suffix
/// <c>.1</c>, <c>.2</c>, … when that name is taken), without a protobuf library. The file is a sequence of
/// <see cref="TfRecord"/> records, each a <c>tensorboard.Event</c> message encoded by hand with the field numbers of
/// tensorboard/compat/proto/event.proto and summary.proto (the same in tensorflow/core/util/event.proto and
/// tensorflow/core/framework/summary.proto):
/// <list type="bullet">
/// <item><c>Event</c>: <c>double wall_time = 1</c>, <c>int64 step = 2</c>, and one of <c>string file_version = 3</c>,
/// <c>Summary summary = 5</c>, <c>SessionLog session_log = 7</c>.</item>
/// <item><c>Summary</c>: <c>repeated Value value = 1</c>; <c>Summary.Value</c>: <c>string tag = 1</c>,
/// <c>float simple_value = 2</c>.</item>
/// <item><c>SessionLog</c>: <c>SessionStatus status = 1</c>, with <c>START = 1</c>.</item>
/// </list>
/// The first record is the version event (<c>file_version</c> "brain.Event:2"). A step group
/// (<see cref="Scalars"/>) is one event holding one value per tag, flushed to the operating system at once, so a killed
/// process loses nothing it logged. Values are stored as float32 (<c>simple_value</c>). A step of 0 is left out of the
/// encoding, as proto3 leaves out default values. Not thread-safe.
/// </summary>
public sealed class TensorBoardEventWriter : IDisposable
{
    /// <summary>The <c>file_version</c> of the first event; TensorBoard reads the number after the colon.</summary>
    public const string FileVersion = "brain.Event:2";

    /// <summary>The prefix of every event file's name; TensorBoard loads the files whose name contains "tfevents".</summary>
    public const string FilePrefix = "events.out.tfevents.";

    // Field numbers (see the class summary).
    const int EventWallTime = 1, EventStep = 2, EventFileVersion = 3, EventSummary = 5, EventSessionLog = 7;
    const int SummaryValue = 1, ValueTag = 1, ValueSimpleValue = 2;
    const int SessionLogStatus = 1, SessionLogStart = 1;

    readonly FileStream stream;
    bool disposed;

    /// <summary>
    /// Creates the directory when needed and a new event file in it, and writes the version event. For a run resumed
    /// from its checkpoint at step <paramref name="resumedAtStep"/>, a <c>SessionLog</c> START event at the next step
    /// follows it: TensorBoard's Python event accumulator then discards the events of earlier files whose step is at
    /// least that step (those logged after the checkpoint by the interrupted run), so each step shows once (its Rust
    /// data server discards them anyway when an earlier step comes again).
    /// </summary>
    public TensorBoardEventWriter(string directory, long? resumedAtStep = null)
    {
        Directory.CreateDirectory(directory);
        var seconds = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var baseName = $"{FilePrefix}{seconds:D10}.{SafeHostName()}";
        (stream, FilePath) = CreateNew(directory, baseName);
        try
        {
            Record(new ProtobufWriter().Double(EventWallTime, Now()).String(EventFileVersion, FileVersion));
            if (resumedAtStep is { } step)
            {
                var sessionLog = new ProtobufWriter().Int64(SessionLogStatus, SessionLogStart);
                Record(Event(step + 1).Message(EventSessionLog, sessionLog));
            }
            stream.Flush();
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>The event file's path.</summary>
    public string FilePath { get; }

    /// <summary>Logs one scalar at <paramref name="step"/> (one event) and flushes.</summary>
    public void Scalar(string tag, double value, long step) =>
        Scalars(new Dictionary<string, double> { [tag] = value }, step);

    /// <summary>
    /// Logs a step group: one event at <paramref name="step"/> holding a value per tag (in the dictionary's order), then
    /// flushes. An empty dictionary writes nothing. Tags must be non-empty; TensorBoard groups them by the part before
    /// the first '/'.
    /// </summary>
    public void Scalars(IReadOnlyDictionary<string, double> values, long step)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
            return;
        var summary = new ProtobufWriter();
        foreach (var (tag, value) in values)
        {
            if (string.IsNullOrEmpty(tag))
                throw new LlgbmException($"TensorBoard event file {FilePath}: a scalar tag is empty at step {step}; expected a name such as 'loss/total'.");
            summary.Message(SummaryValue, new ProtobufWriter().String(ValueTag, tag).Float(ValueSimpleValue, (float)value));
        }
        Record(Event(step).Message(EventSummary, summary));
        Flush();
    }

    /// <summary>Flushes the written events to the operating system.</summary>
    public void Flush()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        stream.Flush();
    }

    /// <summary>Flushes and closes the file.</summary>
    public void Dispose()
    {
        if (disposed)
            return;
        disposed = true;
        stream.Dispose();
    }

    static ProtobufWriter Event(long step)
    {
        var e = new ProtobufWriter().Double(EventWallTime, Now());
        return step == 0 ? e : e.Int64(EventStep, step);
    }

    void Record(ProtobufWriter message) => TfRecord.Write(stream, message.ToArray());

    static double Now() => (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).TotalSeconds;

    static (FileStream, string) CreateNew(string directory, string baseName)
    {
        for (var attempt = 0; ; attempt++)
        {
            var path = Path.Combine(directory, attempt == 0 ? baseName : $"{baseName}.{attempt}");
            try
            {
                return (new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read), path);
            }
            catch (IOException) when (File.Exists(path) && attempt < 1000)
            {
                // Taken (by an earlier writer in the same second): try the next suffix.
            }
        }
    }

    static string SafeHostName()
    {
        string host;
        try
        {
            host = Dns.GetHostName();
        }
        catch (System.Net.Sockets.SocketException)
        {
            host = Environment.MachineName;
        }
        var invalid = Path.GetInvalidFileNameChars();
        var safe = new string(host.Select(c => invalid.Contains(c) ? '_' : c).ToArray());
        return safe.Length == 0 ? "localhost" : safe;
    }
}
