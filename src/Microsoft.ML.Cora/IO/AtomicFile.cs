using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.IO;

internal static class AtomicFile
{
    /// <summary>
    /// Writes through a temporary sibling (<c>.name.PID.random.tmp</c>) renamed over <paramref name="path"/> when complete: a failure
    /// or a kill mid-write leaves any existing file intact. Temporary siblings left by processes that no longer run are removed.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = System.IO.Path.GetFullPath(path);
        var kind = IO.FileChecks.KindOf(full);
        if (kind is not (IO.FileChecks.Kind.Missing or IO.FileChecks.Kind.Regular))
            throw new IOException($"'{IO.ErrorText.Elide(path)}' is a {kind.ToString().ToLowerInvariant()}, not a regular file; refusing to replace it.");
        string dir = System.IO.Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string name = System.IO.Path.GetFileName(full);
        RemoveStale(dir, name);
        string tmp = System.IO.Path.Combine(dir, $".{name}.{Environment.ProcessId}.{Guid.NewGuid().ToString("N")[..8]}.tmp");
        try
        {
            // FileShare.None holds an exclusive advisory lock (flock) on the temporary until it has been renamed into place: a
            // temporary that nobody holds belongs to a writer that died, whatever its process id now names.
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
                File.Move(tmp, full, overwrite: true);
            }
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    private static void RemoveStale(string dir, string name)
    {
        foreach (var f in Directory.EnumerateFiles(dir, $".{name}.*.tmp"))
        {
            try
            {
                using var held = new FileStream(f, FileMode.Open, FileAccess.ReadWrite, FileShare.None);   // fails while its writer lives
                File.Delete(f);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }
}
