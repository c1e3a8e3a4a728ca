namespace Microsoft.ML.Cora.IO;

/// <summary>
/// The one folder where Cora keeps temporary files and folders (best-weights snapshots, unpacked models, ML.NET save and load
/// copies): <c>$CORA_TMPDIR</c>, else <c>cora-scratch</c> in the system temp folder. Each process owns a lock file there, held
/// with an exclusive advisory lock for its lifetime, and names its entries after that owner. At a process's first use, the
/// entries of owners whose lock is free (their process ended, killed or not) are removed: a <c>kill -9</c> leaves nothing behind
/// for long, and a process id reused by another process (PID 1 in every container) is never mistaken for the dead owner.
/// </summary>
internal static class ScratchSpace
{
    /// <summary>Environment variable naming the scratch folder.</summary>
    public const string Variable = "CORA_TMPDIR";

    private const string LockPrefix = ".owner-", LockSuffix = ".lock";
    private static readonly object Gate = new();
    private static string? _root;
    private static string? _owner;
    private static FileStream? _lock;

    /// <summary>The scratch folder (created, and cleaned of dead owners' entries, on first use).</summary>
    public static string Root
    {
        get { lock (Gate) { Start(); return _root!; } }
    }

    /// <summary>A new file path in the scratch folder, named <c>{owner}-{prefix}-{random}{extension}</c> (not created).</summary>
    public static string NewFile(string prefix, string extension = "")
    {
        lock (Gate)
        {
            Start();
            return Path.Combine(_root!, $"{_owner}-{prefix}-{Guid.NewGuid():N}{extension}");
        }
    }

    /// <summary>A new, empty folder in the scratch folder.</summary>
    public static string NewFolder(string prefix) => Directory.CreateDirectory(NewFile(prefix)).FullName;

    private static void Start()
    {
        if (_root is not null) return;
        string root = Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } v ? v : Path.Combine(Path.GetTempPath(), "cora-scratch");
        Directory.CreateDirectory(root);
        string owner = Guid.NewGuid().ToString("N")[..12];
        // FileShare.None takes an exclusive flock on Unix: released by the kernel when the process ends, however it ends.
        _lock = new FileStream(Path.Combine(root, LockPrefix + owner + LockSuffix), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        _root = root; _owner = owner;
        RemoveDead(root, owner);
    }

    /// <summary>Removes the entries of every owner whose lock file can be locked (its process has ended); returns how many.</summary>
    internal static int RemoveDead(string root, string self)
    {
        int removed = 0;
        foreach (var lockFile in Directory.EnumerateFiles(root, LockPrefix + "*" + LockSuffix).ToList())
        {
            string owner = Path.GetFileName(lockFile)[LockPrefix.Length..^LockSuffix.Length];
            if (owner == self) continue;
            FileStream probe;
            try { probe = new FileStream(lockFile, FileMode.Open, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) { continue; }                     // locked: its process is alive
            catch (UnauthorizedAccessException) { continue; }     // another user's
            using (probe)
            {
                // Its entries, and the temporaries of atomic writes it had in progress (".{entry}.{pid}.{random}.tmp").
                foreach (var entry in Directory.EnumerateFileSystemEntries(root, owner + "-*").Concat(Directory.EnumerateFileSystemEntries(root, "." + owner + "-*")).ToList())
                {
                    try
                    {
                        if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true); else File.Delete(entry);
                        removed++;
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
                }
                try { File.Delete(lockFile); } catch (IOException) { }
            }
        }
        return removed;
    }
}
