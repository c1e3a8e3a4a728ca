using System.Runtime.InteropServices;

namespace Microsoft.ML.Cora.IO;

/// <summary>
/// What a path is (regular file, folder, device, FIFO, socket), from stat(2): .NET reports devices and FIFOs as ordinary files.
/// Used to refuse reading from or writing over anything but regular files (a model naming /dev/zero as its LLM must not hang
/// a hash; --out /dev/null must not replace the device).
/// </summary>
internal static class FileChecks
{
    public enum Kind { Missing, Regular, Directory, Device, Fifo, Socket, Other }

    [DllImport("libc", EntryPoint = "stat", SetLastError = true)]
    private static extern int Stat(string path, byte[] buffer);

    public static Kind KindOf(string path)
    {
        if (!OperatingSystem.IsLinux())
            return Directory.Exists(path) ? Kind.Directory : File.Exists(path) ? Kind.Regular : Kind.Missing;
        var buf = new byte[256];
        if (Stat(path, buf) != 0) return Kind.Missing;
        // st_mode: offset 24 on x86-64 (after st_dev, st_ino, st_nlink), 16 on arm64 (after st_dev, st_ino).
        int offset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 24 : 16;
        uint mode = BitConverter.ToUInt32(buf, offset) & 0xF000;
        return mode switch
        {
            0x8000 => Kind.Regular, 0x4000 => Kind.Directory, 0x2000 or 0x6000 => Kind.Device, 0x1000 => Kind.Fifo, 0xC000 => Kind.Socket, _ => Kind.Other,
        };
    }

    [DllImport("libc", EntryPoint = "realpath", SetLastError = true)]
    private static extern IntPtr RealPath(string path, IntPtr resolved);

    [DllImport("libc", EntryPoint = "free")]
    private static extern void Free(IntPtr p);

    /// <summary>The file's identity (device and inode, from stat(2), links followed), or null where it does not exist or on
    /// another OS: two paths name the same file exactly when these are equal (symlinked folders and hard links included).</summary>
    public static (ulong device, ulong inode)? Identity(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        var buf = new byte[256];
        if (Stat(path, buf) != 0) return null;
        return (BitConverter.ToUInt64(buf, 0), BitConverter.ToUInt64(buf, 8));   // st_dev, st_ino: the first two fields on x86-64 and arm64
    }

    /// <summary>The path with every link resolved (realpath(3)); for a file that does not exist yet, its folder's resolved path and
    /// its name. Falls back to the full path where links cannot be resolved.</summary>
    public static string Canonical(string path)
    {
        string full = Path.GetFullPath(path);
        if (!OperatingSystem.IsLinux()) return full;
        static string? Real(string p)
        {
            IntPtr r = RealPath(p, IntPtr.Zero);
            if (r == IntPtr.Zero) return null;
            try { return Marshal.PtrToStringUTF8(r); } finally { Free(r); }
        }
        if (Real(full) is { } resolved) return resolved;
        string? dir = Path.GetDirectoryName(full);
        return dir is not null && Real(dir) is { } d ? Path.Combine(d, Path.GetFileName(full)) : full;
    }

    /// <summary>Throws unless <paramref name="path"/> is a regular file (what <paramref name="what"/> names in the message).</summary>
    public static void RequireRegularFile(string path, string what)
    {
        var k = KindOf(path);
        if (k == Kind.Regular) return;
        if (k == Kind.Missing) throw new FileNotFoundException($"{what} not found: '{ErrorText.Elide(path)}'.", path);
        throw new InvalidDataException($"{what} '{ErrorText.Elide(path)}' is a {k.ToString().ToLowerInvariant()}, not a regular file; refusing to read it.");
    }

    /// <summary>
    /// Checks output paths before any work starts: each must be a new or regular file (not a folder, device, FIFO or socket), in an
    /// existing writable folder, different from every input and from the other outputs. Returns the problems as (name, message).
    /// </summary>
    public static List<(string name, string problem)> CheckOutputs(IEnumerable<(string name, string? path)> outputs, IEnumerable<string?> inputs)
    {
        var problems = new List<(string, string)>();
        // Inputs are compared as files, not as path strings: resolved links, then device and inode (a hard link, or a folder
        // reached through a symlink, names the same file under another path).
        var inputList = inputs.Where(p => !string.IsNullOrEmpty(p)).Select(p => p!).ToList();
        var inputSet = inputList.Select(Canonical).ToHashSet();
        var inputIds = inputList.Select(Identity).Where(i => i is not null).ToHashSet();
        var seen = new Dictionary<string, string>();
        foreach (var (name, path) in outputs)
        {
            if (path is null) continue;
            if (path.Trim().Length == 0) { problems.Add((name, "is empty; give a file path.")); continue; }
            string full = Canonical(path);
            if (System.Text.Encoding.UTF8.GetByteCount(Path.GetFileName(full)) > MaxNameBytes || System.Text.Encoding.UTF8.GetByteCount(full) > MaxPathBytes)
            {
                problems.Add((name, $"'{ErrorText.Elide(path, 80)}' is too long ({full.Length} characters; a name takes at most {MaxNameBytes} bytes, a path {MaxPathBytes}).")); continue;
            }
            var kind = KindOf(full);
            string? dir = Path.GetDirectoryName(full);
            if (kind == Kind.Directory) problems.Add((name, $"'{path}' is a folder; give a file path inside it."));
            else if (kind is not (Kind.Missing or Kind.Regular)) problems.Add((name, $"'{path}' is a {kind.ToString().ToLowerInvariant()}, not a regular file; refusing to replace it."));
            else if (dir is null || !Directory.Exists(dir)) problems.Add((name, $"the folder '{dir}' does not exist; create it first."));
            else if (!CanWrite(dir)) problems.Add((name, $"the folder '{dir}' is not writable."));
            else if (inputSet.Contains(full) || (Identity(full) is { } id && inputIds.Contains(id))) problems.Add((name, $"'{path}' is also an input; writing it would destroy the input. Choose another path."));
            else if (seen.TryGetValue(full, out var other)) problems.Add((name, $"'{path}' is also given to {other}; each output needs its own path."));
            seen.TryAdd(full, name);
        }
        return problems;
    }

    /// <summary>Longest file name and path the checks accept (Linux's NAME_MAX and PATH_MAX).</summary>
    public const int MaxNameBytes = 255, MaxPathBytes = 4095;

    /// <summary>Why <paramref name="dir"/> cannot be used as a folder to write into (null when it can, or when it does not exist yet
    /// and its parent can hold it).</summary>
    public static string? FolderProblem(string dir)
    {
        if (dir.Trim().Length == 0) return "is empty; give a folder.";
        string full = Path.GetFullPath(dir);
        if (System.Text.Encoding.UTF8.GetByteCount(full) > MaxPathBytes) return $"the path is {full.Length} characters long; at most {MaxPathBytes} bytes.";
        var kind = KindOf(full);
        if (kind == Kind.Directory) return CanWrite(full) ? null : $"'{ErrorText.Elide(dir)}' is not writable.";
        if (kind != Kind.Missing) return $"'{ErrorText.Elide(dir)}' is a {(kind == Kind.Regular ? "file" : kind.ToString().ToLowerInvariant())}, not a folder.";
        string? parent = Path.GetDirectoryName(full);
        while (parent is not null && KindOf(parent) == Kind.Missing) parent = Path.GetDirectoryName(parent);
        return parent is null || KindOf(parent) != Kind.Directory ? $"'{ErrorText.Elide(dir)}' cannot be created." : CanWrite(parent) ? null : $"'{ErrorText.Elide(parent)}' is not writable, so '{ErrorText.Elide(dir)}' cannot be created.";
    }

    private static bool CanWrite(string dir)
    {
        string probe = Path.Combine(dir, ".cora-write-probe-" + Guid.NewGuid().ToString("N")[..8]);
        try { using (File.Create(probe, 1, FileOptions.DeleteOnClose)) { } return true; }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException) { return false; }
        finally { try { File.Delete(probe); } catch (IOException) { } }
    }
}
