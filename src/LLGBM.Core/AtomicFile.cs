namespace LLGBM;

/// <summary>
/// Writes a file so that its path only ever holds the old content or the complete new content: the bytes go to a
/// temporary file in the same directory, which is flushed to disk and then renamed over the target. Used for every file
/// LLGBM writes (checkpoints, task directories, run files).
/// </summary>
public static class AtomicFile
{
    /// <summary>The suffix of the temporary files, so that tests and people can recognise leftovers.</summary>
    public const string TempSuffix = ".tmp";

    /// <summary>Writes <paramref name="path"/> through <paramref name="write"/>; on any exception the target is untouched.</summary>
    public static void Write(string path, Action<FileStream> write)
    {
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)
            ?? throw new ArgumentException($"'{path}' has no parent directory.", nameof(path));
        var temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}{TempSuffix}");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try
            {
                File.Delete(temp);
            }
            catch (IOException)
            {
                // Best effort: the original error matters more.
            }
            catch (UnauthorizedAccessException)
            {
                // Likewise.
            }
            throw;
        }
    }

    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> (UTF-8 without a byte-order mark) atomically.</summary>
    public static void WriteText(string path, string text) =>
        Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, leaveOpen: true);
            writer.Write(text);
        });
}
