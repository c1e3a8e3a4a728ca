using Microsoft.ML.Cora.Runtime;

namespace Cora.Tests;

/// <summary>The glibc mmap threshold is set when Cora is first used on Linux with glibc, and left alone elsewhere or when the user set it.</summary>
[TestClass]
public class NativeMemoryTests
{
    [TestMethod]
    public void TheThresholdIsSetOnceCoraIsUsed()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is not null)
        {
            Assert.IsFalse(NativeMemory.Applied, "off Linux (no glibc mallopt), or a threshold the user set, is left alone");
            return;
        }
        Assert.IsTrue(NativeMemory.Applied, "the module initializer set the threshold");
    }
}
